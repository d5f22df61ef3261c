//! raida-sim: the unmodified engine of `raida-core` under a seeded, fault-injecting
//! in-memory world (a simulated kernel, clients, workers and clock), proptest operation
//! sequences, and a small async driver over turmoil's simulated sockets. Every seed
//! replays exactly; invariants are checked after every step.

//! Closed-loop load generator (bench).

#!/usr/bin/env python3
"""The client side of the healing benchmarks (bench/healing.sh), PROTOCOL.md 8b.

  healing.py fixes PORT RAIDA COINS POSITIONS N CONC [PROBE]
      N fixes (2/80, type 0, coin id 0, over TCP) to 127.0.0.1:PORT, CONC in flight,
      each of one coin of COINS (`DEN:SN AN` lines, in turn) with nonzero tickets (that
      no peer issued) at POSITIONS (e.g. `1` or `1-24`). Prints the answers' status
      counts and two distributions of answer times: the client's (connect to the
      answer's last byte) and the server's own (response bytes 12..15: accept to the
      answer built). With PROBE=1, once CONC fixes have been sent and have had 300 ms
      to start waiting, one more is sent and its status and times are printed (at
      max_fixes waiting: 160 at once).

  healing.py keep PORT RAIDA COINS POSITIONS CONC
      Keeps CONC fixes waiting: each answered one is replaced at once. Prints
      `waiting` once the first CONC are sent; on SIGTERM/SIGINT prints the answers'
      status counts and answer times.

  healing.py tickets BASE COUNT COIN_ID COINS F OUT
      Fetches F tickets (get_ticket 2/40 of one coin, over UDP) from each RAIDA
      1..COUNT-1 at 127.0.0.1:BASE+i, ticket k of each for coin k of COINS (in turn),
      then writes OUT: F fix requests for RAIDA 0 (fix k: coin k, PG random, the
      COUNT-1 tickets k), as loadgen's LOADGEN_REQS records (2-byte BE length, the
      request).

  healing.py ticket-reqs RAIDA COIN_ID COINS N OUT
      Writes N get_ticket requests of one coin each (COINS in turn) for RAIDA, as
      LOADGEN_REQS records.
"""

import asyncio
import os
import select
import signal
import socket
import struct
import sys
import time
import zlib

RAIDAS = 25
HEALING = 2
GET_TICKET = 40
FIX = 80


def request(raida, group, command, coin_id, payload, echo=0):
    """A type-0 request (32-byte header, challenge, payload, trailer)."""
    challenge = os.urandom(12)
    body = challenge + struct.pack(">I", zlib.crc32(challenge)) + payload + b"\x3e\x3e"
    h = bytearray(32)
    h[0] = 1
    h[2] = raida
    h[4] = group
    h[5] = command
    h[6:8] = struct.pack(">H", coin_id)
    h[8] = 1
    h[22:24] = struct.pack(">H", len(body))
    h[30:32] = struct.pack(">H", echo & 0xFFFF)
    return bytes(h) + body


def coin_ref(den, sn):
    return struct.pack(">bI", den, sn)


def read_coins(path):
    coins = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and ":" in parts[0]:
                den, sn = parts[0].split(":")
                coins.append((int(den), int(sn), bytes.fromhex(parts[1])))
    if not coins:
        sys.exit(f"{path}: no coins")
    return coins


def positions(spec):
    out = set()
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return sorted(out)


def fix_request(raida, coin_id, coin, tickets):
    payload = coin_ref(coin[0], coin[1]) + os.urandom(16)
    payload += b"".join(struct.pack(">I", t) for t in tickets)
    return request(raida, HEALING, FIX, coin_id, payload)


def dummy_fix(raida, coin, pos):
    """A fix whose tickets at `pos` are nonzero (values that no peer issued)."""
    tickets = [0] * RAIDAS
    for p in pos:
        tickets[p] = 0x1000 + p
    return fix_request(raida, 0, coin, tickets)


async def ask(port, req):
    """Sends `req` over TCP; (status, seconds from connect to the answer's end, seconds
    the server says it took: response bytes 12..15, from its accept to building the
    answer)."""
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(req)
        await writer.drain()
        data = await reader.read(32)
        while 0 < len(data) < 32:
            more = await reader.read(32 - len(data))
            if not more:
                break
            data += more
        if len(data) == 32:
            size = int.from_bytes(data[9:12], "big")
            if size:
                await reader.readexactly(size)
        writer.close()
    except (OSError, asyncio.IncompleteReadError) as e:
        return (f"error:{type(e).__name__}", time.monotonic() - t0, None)
    if len(data) < 32:
        return ("short", time.monotonic() - t0, None)
    return (data[2], time.monotonic() - t0, int.from_bytes(data[12:16], "big") / 1e6)


def summary(results, label):
    counts = {}
    for s, _, _ in results:
        counts[s] = counts.get(s, 0) + 1
    if not results:
        print(f"{label}: no answers")
        return

    def dist(times):
        times = sorted(t * 1000 for t in times)
        if not times:
            return "-"
        q = lambda p: times[min(len(times) - 1, int(p * len(times)))]
        return (
            f"min={times[0]:.1f} p50={q(0.5):.1f} p90={q(0.9):.1f} "
            f"p99={q(0.99):.1f} max={times[-1]:.1f}"
        )

    print(
        f"{label}: n={len(results)} statuses={dict(sorted(counts.items(), key=str))}\n"
        f"  answer_ms (client: connect to last byte) {dist([t for _, t, _ in results])}\n"
        f"  server_ms (response bytes 12..15: accept to answer built) "
        f"{dist([t for _, _, t in results if t is not None])}",
        flush=True,
    )


async def fixes(port, raida, coins, pos, n, conc, probe):
    results = []
    sent = 0

    async def worker():
        nonlocal sent
        while sent < n:
            k = sent
            sent += 1
            results.append(await ask(port, dummy_fix(raida, coins[k % len(coins)], pos)))

    tasks = [asyncio.create_task(worker()) for _ in range(conc)]
    if probe:
        await asyncio.sleep(0.3)
        status, t, srv = await ask(port, dummy_fix(raida, coins[0], pos))
        print(
            f"probe with {conc} fixes sent: status={status} answer_ms={t * 1000:.1f} "
            f"server_ms={(srv or 0) * 1000:.1f}",
            flush=True,
        )
    await asyncio.gather(*tasks)
    summary(results, f"fixes conc={conc} positions={len(pos)}")


async def keep(port, raida, coins, pos, conc):
    results = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def worker(i):
        k = i
        while not stop.is_set():
            results.append(await ask(port, dummy_fix(raida, coins[k % len(coins)], pos)))
            k += conc

    tasks = [asyncio.create_task(worker(i)) for i in range(conc)]
    await asyncio.sleep(0.2)
    print("waiting", flush=True)
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    summary(results, f"kept conc={conc} positions={len(pos)}")


def write_records(path, requests):
    with open(path, "wb") as f:
        for r in requests:
            f.write(struct.pack(">H", len(r)) + r)


def tickets(base, count, coin_id, coins, f_count, out):
    """F tickets from each RAIDA 1..count-1 over UDP; request k's echo bytes are k."""
    if f_count > 65536:
        sys.exit("at most 65,536 tickets per RAIDA (the echo bytes name the request)")
    got = {i: [0] * f_count for i in range(1, count)}
    socks = {}
    for i in range(1, count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", base + i))
        s.setblocking(False)
        socks[s.fileno()] = (i, s)
    t0 = time.monotonic()
    window = 32
    for attempt in range(10):
        # Per RAIDA: the indices still without a ticket.
        todo = {i: [k for k in range(f_count) if got[i][k] == 0] for i in got}
        if not any(todo.values()):
            break
        nexts = {i: 0 for i in todo}
        outstanding = {i: 0 for i in todo}
        last = time.monotonic()

        def send(i):
            s = next(s for fd, (j, s) in socks.items() if j == i)
            while outstanding[i] < window and nexts[i] < len(todo[i]):
                k = todo[i][nexts[i]]
                nexts[i] += 1
                den, sn, an = coins[k % len(coins)]
                try:
                    s.send(request(i, HEALING, GET_TICKET, coin_id, coin_ref(den, sn) + an, k))
                except BlockingIOError:
                    nexts[i] -= 1
                    return
                outstanding[i] += 1

        for i in todo:
            send(i)
        while any(nexts[i] < len(todo[i]) or outstanding[i] > 0 for i in todo):
            r, _, _ = select.select(list(socks), [], [], 0.2)
            if not r:
                if time.monotonic() - last > 0.5:
                    break  # the rest were lost: the next attempt asks again
                continue
            last = time.monotonic()
            for fd in r:
                i, s = socks[fd]
                while True:
                    try:
                        d = s.recv(2048)
                    except BlockingIOError:
                        break
                    outstanding[i] = max(0, outstanding[i] - 1)
                    if len(d) >= 32 + 4 and d[2] == 241:
                        k = int.from_bytes(d[6:8], "big")
                        if k < f_count:
                            got[i][k] = int.from_bytes(d[32:36], "big")
                send(i)
    missing = sum(t.count(0) for t in got.values())
    took = time.monotonic() - t0
    print(
        f"tickets: {f_count} from each of {count - 1} RAIDAs in {took:.1f} s "
        f"({(count - 1) * f_count / took:.0f}/s), {missing} missing",
        flush=True,
    )
    if missing:
        sys.exit(1)
    fixes_out = []
    for k in range(f_count):
        t = [0] * RAIDAS
        for i in range(1, count):
            t[i] = got[i][k]
        fixes_out.append(fix_request(0, coin_id, coins[k % len(coins)], t))
    write_records(out, fixes_out)


def ticket_reqs(raida, coin_id, coins, n, out):
    reqs = []
    for k in range(n):
        den, sn, an = coins[k % len(coins)]
        reqs.append(request(raida, HEALING, GET_TICKET, coin_id, coin_ref(den, sn) + an, k))
    write_records(out, reqs)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, a = argv[1], argv[2:]
    if cmd == "fixes":
        probe = len(a) > 6 and a[6] == "1"
        asyncio.run(
            fixes(int(a[0]), int(a[1]), read_coins(a[2]), positions(a[3]), int(a[4]), int(a[5]), probe)
        )
    elif cmd == "keep":
        asyncio.run(keep(int(a[0]), int(a[1]), read_coins(a[2]), positions(a[3]), int(a[4])))
    elif cmd == "tickets":
        tickets(int(a[0]), int(a[1]), int(a[2]), read_coins(a[3]), int(a[4]), a[5])
    elif cmd == "ticket-reqs":
        ticket_reqs(int(a[0]), int(a[1]), read_coins(a[2]), int(a[3]), a[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

#!/usr/bin/env python3
"""Writes the seed corpus of connection-fuzz (fuzz/corpus/connection/): real requests, cut
into reads and mixed with lifecycle events, in the script encoding that the comment at the top
of fuzz/connection_fuzz.cpp describes. Run it from anywhere after changing a seed:
    fuzz/make_connection_seeds.py
"""

import os
import shutil

HOST = "Host: a\r\n"


def config(c0=0, c1=0):
    return bytes([c0, c1])


def slot(s):
    return str(s).encode()


def data(s, payload, op="d"):
    """A piece per 255 bytes (a piece is read in one read at most)."""
    if isinstance(payload, str):
        payload = payload.encode()
    out = b""
    for i in range(0, len(payload), 255):
        piece = payload[i:i + 255]
        out += op.encode() + slot(s) + bytes([len(piece)]) + piece
    return out


def pieces(s, payload, *cuts):
    """The payload cut at these offsets into reads."""
    if isinstance(payload, str):
        payload = payload.encode()
    bounds = [0, *cuts, len(payload)]
    return b"".join(data(s, payload[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a)


def big(s, payload, times16):
    if isinstance(payload, str):
        payload = payload.encode()
    return b"D" + slot(s) + bytes([len(payload), times16]) + payload


def op(letter, s=None, n=None):
    out = letter.encode()
    if s is not None:
        out += slot(s)
    if n is not None:
        out += bytes([n])
    return out


def get(path="/", extra=""):
    return f"GET {path} HTTP/1.1\r\n{HOST}{extra}\r\n"


def post(path, body, extra=""):
    return f"POST {path} HTTP/1.1\r\n{HOST}Content-Length: {len(body)}\r\n{extra}\r\n{body}"


CHUNKED = (
    f"POST /b HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\n\r\n"
    "5;a=b;c=d\r\nhello\r\n"
    "6 ; q=\"x\\\"y\"\r\n world\r\n"
    "1;e\r\n!\r\n"
    "0\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n"
)
WEBSOCKET = (f"GET /u HTTP/1.1\r\n{HOST}Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

SEEDS = {
    "get_keep_alive": config() + data(0, get()) + data(0, get("/x")) + op("e", 0),
    "get_in_pieces": config() + pieces(0, get(), 1, 5, 17, 20) + op("t", 0),
    "pipelined": config() + data(0, get() + get("/b") + f"HEAD / HTTP/1.1\r\n{HOST}\r\n"
                                 + get("/", "Connection: close\r\n")) + op("e", 0),
    "pipelined_partial_then_silence": config() + data(0, get() + "GET / HT") + op("t", 0),
    "post_content_length": config() + pieces(0, post("/b", "name=duck&x=1"), 30, 50) + op("e", 0),
    "chunked_extensions_trailers": config() + pieces(0, CHUNKED, 40, 64, 70, 90) + op("e", 0),
    "expect_continue": config()
    + data(0, post("/b", "", "Expect: 100-continue\r\n").replace("Content-Length: 0",
                                                                   "Content-Length: 5"))
    + data(0, "hello") + op("e", 0),
    "upgrade_websocket": config() + data(0, WEBSOCKET + "early") + data(0, "frame")
    + op("u", 0, 0) + op("u", 0, 1) + op("P") + data(0, "q") + op("e", 0) + op("P"),
    "upgrade_drain": config() + data(0, WEBSOCKET) + op("A") + op("B") + op("P") + op("r", 0)
    + op("e", 0),
    "upgrade_kept_past_drain": config() + data(0, WEBSOCKET.replace("/u ", "/uk "))
    + op("B") + op("P") + data(0, "more") + op("k"),
    "connect_tunnel": config() + data(0, "CONNECT u.example:443 HTTP/1.1\r\nHost: u.example:443\r\n\r\n")
    + data(0, "tunnelled bytes") + op("u", 0, 2) + op("P"),
    "head": config() + data(0, f"HEAD / HTTP/1.1\r\n{HOST}\r\nHEAD /s HTTP/1.1\r\n{HOST}\r\n")
    + op("c", 0, 2) + op("c", 0, 4) + op("e", 0),
    "http10_stream": config() + data(0, "GET /s HTTP/1.0\r\n\r\n") + op("c", 0, 2) + op("c", 0, 4),
    "http10_keep_alive": config() + data(0, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    + data(0, "GET /x HTTP/1.0\r\n\r\n"),
    "answered_later": config() + data(0, get("/l")) + op("c", 0, 0) + data(0, get("/l"))
    + op("c", 0, 1) + op("P") + data(0, get("/o")) + op("P") + op("e", 0),
    "streamed_later": config() + data(0, get("/s")) + op("c", 0, 2) + op("c", 0, 3) + op("P")
    + op("c", 0, 4) + data(0, get("/S")) + op("e", 0),
    "content_length_mismatch": config() + data(0, get("/c")) + op("c", 0, 2) + op("c", 0, 4)
    + data(1, get("/c")) + op("c", 1, 4),
    "upgrade_dropped_elsewhere": config() + data(0, WEBSOCKET) + op("e", 0) + op("P")
    + op("u", 0, 1) + op("P") + op("u", 0, 5) + op("P"),
    "pipelined_behind_a_full_stream": config() + op("m", 0, 0) + data(0, get("/S") + "GET / HT")
    + op("m", 0, 255) + op("w", 0) + op("t", 0),
    "throws_and_drops": config() + data(0, get("/t")) + data(1, get("/T")) + data(2, get("/d") + get("/i"))
    + data(3, get("/n") + get("/n3") + get("/x")),
    "drain_idle": config() + data(0, get()) + data(1, get("/l")) + op("o", 2) + op("A")
    + op("B") + op("c", 1, 0) + op("e", 0),
    "drain_pipelined_in_flight": config() + data(0, get("/l") + get()) + op("A") + op("B")
    + op("c", 0, 1) + op("P"),
    "drain_request_arrived_unreported": config() + data(0, get()) + data(0, get(), op="a")
    + op("B"),
    "idle_grace": config(64) + data(0, get()) + data(1, get()) + op("B") + data(0, get())
    + op("g"),
    "deadline": config() + data(0, get("/l")) + data(1, get("/s")) + op("B") + op("k"),
    "destroy_mid_request": config() + data(0, "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    + data(1, get("/l")) + op("K") + op("c", 1, 0),
    "handover_then_drain": config() + op("h") + op("o", 0) + op("B") + data(0, get()),
    "tls_handshake_then_drain": config() + op("o", 0) + op("p", 0) + op("B") + op("p", 0)
    + data(0, get()),
    "slow_reader": config() + op("m", 0, 0) + data(0, get("/S")) + op("m", 0, 10) + op("w", 0)
    + op("t", 0) + data(1, get()) + op("m", 1, 255) + op("w", 1),
    "write_failures": config() + op("X", 0, 0) + data(0, get()) + op("Q", 1, 1) + data(1, get())
    + op("w", 1) + op("Q", 2, 2) + data(2, get()),
    "read_failures": config() + op("q", 0, 1) + data(0, get()) + op("w", 0) + op("x", 0)
    + op("q", 1, 3) + op("r", 1) + op("q", 2, 2) + data(2, get("/l")),
    "timeouts": config() + data(0, "GET / HTTP/1.1\r\nHo") + op("t", 0) + data(1, get())
    + op("t", 1) + data(2, post("/b", "abcdef")[:-3]) + op("t", 2) + op("o", 3) + op("t", 3),
    "connection_limit": config(128) + data(0, get()) + data(1, get()) + data(2, get())
    + op("e", 2),
    "small_limits": config(32) + data(0, get("/" + "a" * 80)) + data(1, get("/", "X-Long: " + "b" * 300 + "\r\n"))
    + data(2, post("/b", "c" * 300)),
    "timeouts_disabled": config(31) + data(0, "GET / HT") + op("t", 0) + data(1, get()),
    "handles_outlive_worker": config(0, 1) + data(0, get("/l")) + data(1, get("/s"))
    + data(2, WEBSOCKET),
    "large_head": config() + data(0, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ")
    + big(0, "0123456789abcdef", 200) + data(0, "\r\n\r\n"),
    "large_body": config() + data(0, f"POST /b HTTP/1.1\r\n{HOST}Content-Length: 20000\r\n\r\n")
    + big(0, "0123456789", 124) + big(0, "0123456789", 0) + op("e", 0),
    "bad_host": config() + data(0, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
    "bad_no_host": config() + data(0, "GET / HTTP/1.1\r\n\r\n" + get()),
    "bad_smuggling_cl_te": config() + data(0, "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                                           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "bad_chunk_size": config() + data(0, f"POST /b HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\n\r\n"
                                      "zz\r\nhello\r\n0\r\n\r\n"),
    "bad_bare_lf": config() + data(0, "GET / HTTP/1.1\nHost: a\n\n"),
    "bad_obs_fold": config() + data(0, "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"),
    "bad_version": config() + data(0, "GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
    "four_connections": config() + data(0, get("/l")) + data(1, get("/s")) + data(2, WEBSOCKET)
    + pieces(3, CHUNKED, 50) + op("A") + op("c", 0, 1) + op("c", 1, 3) + op("P")
    + op("B") + op("P") + op("c", 1, 5) + op("P") + op("g") + op("k"),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "connection")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name, seed in sorted(SEEDS.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(seed)
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()

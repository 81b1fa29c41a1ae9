"""One HTTP/2 request over cleartext (prior knowledge), byte for byte: header values are sent as
given (no client refuses non-UTF-8 octets), which HTTP/1's codec in Envoy would refuse before any
filter runs. Only what the tests read is decoded from the answer: `:status` and the body."""
import socket
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0, 1, 3, 4, 7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
# HPACK's static table entries for `:status` (RFC 7541, appendix A).
STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
# HPACK's Huffman codes of the digits (RFC 7541, appendix B): all a status needs.
HUFFMAN_DIGITS = {"00000": "0", "00001": "1", "00010": "2", "011001": "3", "011010": "4",
                  "011011": "5", "011100": "6", "011101": "7", "011110": "8", "011111": "9"}


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def integer(n, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if n < limit:
        return bytes([first | n])
    out = [first | limit]
    n -= limit
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """A literal header field without indexing, new name, no Huffman coding."""
    return b"\x00" + integer(len(name), 7) + name + integer(len(value), 7) + value


def read_integer(block, i, prefix_bits):
    limit = (1 << prefix_bits) - 1
    n = block[i] & limit
    i += 1
    if n < limit:
        return n, i
    shift = 0
    while True:
        b = block[i]
        i += 1
        n += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def status_of(block: bytes) -> int:
    """`:status`, the first field of a response header block (Envoy sends it first)."""
    first = block[0]
    if first & 0x80:
        index, _ = read_integer(block, 0, 7)
        return STATIC_STATUS[index]
    prefix = 6 if first & 0xC0 == 0x40 else 4
    index, i = read_integer(block, 0, prefix)
    assert index == 8, f"the first response field is not :status: {block[:16]!r}"
    huffman = block[i] & 0x80
    length, i = read_integer(block, i, 7)
    raw = block[i:i + length]
    if not huffman:
        return int(raw)
    bits, digits, code = "".join(f"{b:08b}" for b in raw), "", ""
    for bit in bits:
        code += bit
        if code in HUFFMAN_DIGITS:
            digits, code = digits + HUFFMAN_DIGITS[code], ""
    return int(digits)


def request(port, headers, timeout=10):
    """Sends one request (`headers`: (name, value) byte pairs, pseudo-headers first) on stream 1;
    returns (status, body), status 0 when the stream was reset or the connection closed."""
    block = b"".join(literal(n, v) for n, v in headers)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
        buf, status, body = b"", 0, b""
        while True:
            while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
                chunk = s.recv(65536)
                if not chunk:
                    return status, body
                buf += chunk
            length = int.from_bytes(buf[:3], "big")
            kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            payload, buf = buf[9:9 + length], buf[9 + length:]
            if kind == SETTINGS and not flags & ACK:
                s.sendall(frame(SETTINGS, ACK, 0))
            elif kind in (RST_STREAM, GOAWAY):
                return 0, body
            elif stream == 1 and kind == HEADERS:
                status = status_of(payload)
            elif stream == 1 and kind == DATA:
                body += payload
            if stream == 1 and kind in (HEADERS, DATA) and flags & END_STREAM:
                return status, body

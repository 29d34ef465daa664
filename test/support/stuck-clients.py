"""Opens N connections that each send a GET and then never read, with a small receive buffer so
the kernel holds little of each response (the test measures the server, not the loopback).
Prints "ready" once every request is sent; closes them all when stdin closes."""
import socket
import sys

host, port, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
sockets = []
for _ in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    sockets.append(s)
print("ready", flush=True)
sys.stdin.read()
for s in sockets:
    s.close()

#!/usr/bin/python3
"""foobar demo application: a tiny notes service.

Python 3 standard library (http.server) + PyMySQL (Debian package python3-pymysql).

Configuration, from the environment (the systemd unit loads it from an EnvironmentFile, mode 0600):
  FOOBAR_APP_BIND       address:port to listen on, e.g. 127.0.1.2:8000  (required)
  FOOBAR_DB_WRITE_HOST  MariaDB primary: POST /notes writes here          (required)
  FOOBAR_DB_READ_HOST   MariaDB replica: GET /notes, /health read here    (default: write host)
  FOOBAR_DB_PORT        default 3306
  FOOBAR_DB_WRITE_PORT  the write host's port (default: FOOBAR_DB_PORT)
  FOOBAR_DB_NAME, FOOBAR_DB_USER, FOOBAR_DB_PASSWORD                      (required)
  FOOBAR_APP_VERSION    default "1"

Endpoints:
  GET  /        200 "served by <hostname> (app version <v>)\\n"  (no database access)
  GET  /health  200 "ok\\n" if the read database answers SELECT 1, else 503
  POST /notes   text body -> INSERT on the write database; 201 {"id": .., "host": ..}
  GET  /notes   JSON list of notes from the read database (newest first, at most 1000)

The notes table is created on the write database lazily, on the first POST (never at startup:
the replica is read-only). One database connection per request, 2 s connect timeout. One log
line per request on stderr. SIGTERM/SIGINT: stop accepting, finish running requests, exit 0.
"""

import datetime
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import pymysql
except ImportError:  # /health, /notes answer 503 until python3-pymysql is installed
    pymysql = None

MAX_BODY = 64 * 1024
HOSTNAME = socket.gethostname()

CREATE_TABLE = """CREATE TABLE IF NOT EXISTS notes (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    body TEXT,
    written_by VARCHAR(64),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
)"""


def log(msg):
    sys.stderr.write("%s %s\n" % (datetime.datetime.now().isoformat(timespec="milliseconds"), msg))
    sys.stderr.flush()


class Config:
    def __init__(self, env):
        missing = [k for k in ("FOOBAR_APP_BIND", "FOOBAR_DB_WRITE_HOST", "FOOBAR_DB_NAME",
                               "FOOBAR_DB_USER", "FOOBAR_DB_PASSWORD") if k not in env]
        if missing:
            raise ValueError("missing environment: " + ", ".join(missing))
        bind = env["FOOBAR_APP_BIND"]
        host, sep, port = bind.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError("FOOBAR_APP_BIND must be address:port, got %r" % bind)
        self.bind = (host.strip("[]") or "0.0.0.0", int(port))
        self.write_host = env["FOOBAR_DB_WRITE_HOST"]
        self.read_host = env.get("FOOBAR_DB_READ_HOST") or self.write_host
        self.db_port = int(env.get("FOOBAR_DB_PORT") or 3306)
        self.write_port = int(env.get("FOOBAR_DB_WRITE_PORT") or self.db_port)
        self.db_name = env["FOOBAR_DB_NAME"]
        self.db_user = env["FOOBAR_DB_USER"]
        self.db_password = env["FOOBAR_DB_PASSWORD"]
        self.version = env.get("FOOBAR_APP_VERSION") or "1"


CONFIG = None
_table_ready = False
_table_lock = threading.Lock()


def connect(host, port=None):
    if pymysql is None:
        raise RuntimeError("PyMySQL is not installed (python3-pymysql)")
    # As bytes: PyMySQL encodes a str password as latin-1 (a `€` fails), while the server
    # and foobar's account hash take the password's UTF-8 bytes.
    return pymysql.connect(host=host, port=port or CONFIG.db_port, user=CONFIG.db_user,
                           password=CONFIG.db_password.encode("utf-8"),
                           database=CONFIG.db_name,
                           connect_timeout=2, read_timeout=5, write_timeout=5,
                           autocommit=True, charset="utf8mb4")


def ensure_table(cur, force=False):
    global _table_ready
    with _table_lock:
        if force or not _table_ready:
            cur.execute(CREATE_TABLE)
            _table_ready = True


def insert_note(body):
    conn = connect(CONFIG.write_host, CONFIG.write_port)
    try:
        with conn.cursor() as cur:
            ensure_table(cur)
            sql = "INSERT INTO notes (body, written_by) VALUES (%s, %s)"
            try:
                cur.execute(sql, (body, HOSTNAME))
            except pymysql.err.ProgrammingError as e:
                if e.args[0] != 1146:  # table dropped since we created it
                    raise
                ensure_table(cur, force=True)
                cur.execute(sql, (body, HOSTNAME))
            return cur.lastrowid
    finally:
        conn.close()


def list_notes():
    conn = connect(CONFIG.read_host)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT id, body, written_by, created_at FROM notes "
                            "ORDER BY id DESC LIMIT 1000")
            except pymysql.err.ProgrammingError as e:
                if e.args[0] == 1146:  # nothing written yet (or not replicated yet)
                    return []
                raise
            return [{"id": r[0], "body": r[1], "written_by": r[2],
                     "created_at": r[3].isoformat(sep=" ") if r[3] is not None else None}
                    for r in cur.fetchall()]
    finally:
        conn.close()


def check_read_db():
    conn = connect(CONFIG.read_host)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone()[0] == 1
    finally:
        conn.close()


class Handler(BaseHTTPRequestHandler):
    server_version = "foobar-app"
    timeout = 10  # per-connection socket timeout: slow clients cannot pin a thread

    def version_string(self):
        return self.server_version

    def _send(self, code, body, ctype="text/plain; charset=utf-8"):
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, code, obj):
        self._send(code, json.dumps(obj) + "\n", "application/json")

    def _path(self):
        return self.path.split("?", 1)[0]

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self._path()
        if path == "/":
            self._send(200, "served by %s (app version %s)\n" % (HOSTNAME, CONFIG.version))
        elif path == "/health":
            try:
                ok = check_read_db()
            except Exception as e:  # any database or network error
                self._send(503, "database unavailable: %s\n" % e)
                return
            self._send(200 if ok else 503, "ok\n" if ok else "unexpected answer\n")
        elif path == "/notes":
            try:
                notes = list_notes()
            except Exception as e:
                self._json(503, {"error": str(e)})
                return
            self._json(200, notes)
        else:
            self._send(404, "not found\n")

    def do_POST(self):
        if self._path() != "/notes":
            self._send(404, "not found\n")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(411, "Content-Length required\n")
            return
        if length < 0 or length > MAX_BODY:
            self._send(413, "body too large (max %d bytes)\n" % MAX_BODY)
            return
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        try:
            note_id = insert_note(body)
        except Exception as e:
            self._json(503, {"error": str(e)})
            return
        self._json(201, {"id": note_id, "host": HOSTNAME})

    def log_request(self, code="-", size="-"):
        ms = (time.monotonic() - self._t0) * 1000 if hasattr(self, "_t0") else 0.0
        log('%s "%s" %s %.1fms' % (self.client_address[0], self.requestline, code, ms))

    def log_message(self, fmt, *args):  # errors from http.server itself
        log("%s %s" % (self.client_address[0], fmt % args))

    def parse_request(self):
        self._t0 = time.monotonic()
        return super().parse_request()


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for running requests (each is bounded)
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, addr, handler):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, handler)


def main():
    global CONFIG
    try:
        CONFIG = Config(os.environ)
    except ValueError as e:
        log("config error: %s" % e)
        return 2
    server = Server(CONFIG.bind, Handler)

    def stop(signum, _frame):
        log("signal %d: shutting down" % signum)
        # shutdown() waits for serve_forever() to return: call it from another thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("listening on %s:%d as %s, app version %s, db write=%s:%d read=%s:%d name=%s%s"
        % (CONFIG.bind[0], CONFIG.bind[1], HOSTNAME, CONFIG.version, CONFIG.write_host,
           CONFIG.write_port, CONFIG.read_host, CONFIG.db_port, CONFIG.db_name,
           "" if pymysql else " (PyMySQL missing!)"))
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

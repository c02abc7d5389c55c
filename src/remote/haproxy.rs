//! HAProxy's runtime API, the one client (rolling restarts and verify).

use crate::shell::Script;

/// A script that sends `commands` (`;`-separated, one connection) to the HAProxy runtime API
/// at `socket` and prints the answer (Python: Debian's HAProxy does not pull in socat).
pub fn haproxy_runtime(socket: &str, commands: &str) -> Script {
    let mut s = Script::new();
    s.code("python3 -c 'import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(5)\ns.connect(sys.argv[1])\ns.sendall(sys.argv[2].encode()+b\"\\n\")\nb=b\"\"\nwhile True:\n  d=s.recv(65536)\n  if not d: break\n  b+=d\nsys.stdout.write(b.decode())' ")
        .word(socket)
        .code(" ")
        .word(commands);
    s
}

/// One `GET /` to `addr` (`ip:port`) with `Host: host`, run on a host: prints the status
/// code on the first line, then the body. For checks that must start inside the hosts'
/// network (a floating address, web hosts behind the load balancers), not from foobar's.
pub fn http_get(addr: &str, host: &str) -> Script {
    let mut s = Script::new();
    s.code(include_str!("sh/http_get.sh"))
        .code("http_get ")
        .word(addr)
        .code(" ")
        .word(host)
        .code("\n");
    s
}

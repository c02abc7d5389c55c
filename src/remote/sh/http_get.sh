# http_get ADDR HOST: one GET / to ADDR (ip:port) with Host: HOST; prints the status code on
# the first line, then the body ("000" when nothing answered within 2 s).
http_get() {
  python3 -c '
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
try:
    c = http.client.HTTPConnection(host, int(port), timeout=2)
    c.request("GET", "/", headers={"Host": sys.argv[2]})
    r = c.getresponse()
    print(r.status)
    sys.stdout.write(r.read().decode(errors="replace"))
except (OSError, http.client.HTTPException) as e:
    print("000")
    print(e)
' "$1" "$2"
}

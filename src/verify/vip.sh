# vip_probe IF ADDR SOCKET VIPADDR DOMAIN TRIES: one load balancer's side of the floating
# address, in sections: whether IF carries ADDR, whether keepalived runs, the VRRP state its
# notify script recorded, whether HAProxy answers on its runtime API (SOCKET), and TRIES
# GETs through the floating address VIPADDR (ip:port) from here.
vip_probe() {
  echo '#vip:holds'
  if ip -o -4 addr show dev "$1" 2>/dev/null | grep -qF " $2/"; then echo yes; else echo no; fi
  echo '#vip:keepalived'
  pid=$(cat /run/keepalived.pid 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo running; else echo stopped; fi
  echo '#vip:state'
  cat /run/foobar-vrrp-state 2>/dev/null || echo unknown
  echo '#vip:haproxy'
  if printf 'show info\n' | socat -t 1 - "UNIX-CONNECT:$3" 2>/dev/null | grep -q '^Pid: '; then
    echo answering
  else
    echo silent
  fi
  echo '#vip:http'
  i=0
  while [ "$i" -lt "$6" ]; do
    http_get "$4" "$5" | head -c 2000 | tr '\n' ' '
    echo
    i=$((i + 1))
  done
  echo '#vip:end'
}

# The host lock (see remote::lock): every value comes as a positional argument.

# take_lock BREAK DIR HOLDER TEXT: with BREAK=1 remove any lock first; make DIR, then create
# HOLDER exclusively (set -C: O_EXCL) holding TEXT. Status 0 when this run took the lock.
# An existing directory (every run after a host's first) costs no process, and neither does
# the exclusive create: set and printf are builtins, and a failed redirection only fails
# printf (not a special builtin: the shell goes on).
take_lock() {
  if [ "$1" = 1 ]; then rm -rf -- "$2"; fi
  { [ -d "$2" ] || mkdir -p -- "$2"; } 2>/dev/null
  set -C; { printf '%s\n' "$4" > "$3"; } 2>/dev/null; took=$?; set +C
  return "$took"
}

# locked_by HOLDER: the protocol's LOCKED line, with the holder's text in base64. A holder
# is created first and written right after: wait (up to 2 s) while it is still empty.
locked_by() {
  n=0; while [ -e "$1" ] && [ ! -s "$1" ] && [ "$n" -lt 20 ]; do sleep 0.1; n=$((n+1)); done
  printf 'LOCKED\t'; { cat -- "$1" 2>/dev/null || :; } | base64 -w0; echo
}

# The facts the gather reads and an apply re-reads under the lock (see gather::facts_script).
# Paths come as positional arguments; their output is framed by the caller's sections.

# any_path PATH...: whether any PATH exists (on a fresh host none does: stat and sha256sum
# are then not started; [ is a builtin).
any_path() {
  for p do if [ -e "$p" ] || [ -L "$p" ]; then return 0; fi; done
  return 1
}

# stat_paths PATH...: each existing PATH's type, mode, owner, group, size, path, the path as
# shown (`path -> target` for a link, `escape` quoting: a link's target is whatever its maker
# wrote, and a newline in it must not start a line of ours), inode and change time in UTC
# (the facts must not depend on the host's time zone file). Paths hold no control
# characters (checked at load). Kept in $S too: the bodies take their sizes from it.
stat_paths() {
  S=$(QUOTING_STYLE=escape TZ=UTC0 stat --printf '%F\t%a\t%U\t%G\t%s\t%n\t%N\t%i %z\n' -- "$@" 2>/dev/null)
  [ -n "$S" ] && printf '%s\n' "$S"
}

# hash_files FILE...: sha256sum's lines for the FILEs it can read, in one process. Kept in
# $H too: the bodies are chosen from it.
hash_files() {
  H=$(sha256sum -- "$@" 2>/dev/null)
  [ -n "$H" ] && printf '%s\n' "$H"
}

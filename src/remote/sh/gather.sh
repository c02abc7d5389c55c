# The gather's bodies of files that differ (see gather::gather_script).

# send_bodies LIMIT SMALL SUM...: for each of sha256sum's lines in $H that is not one of the
# SUMs (the desired `digest  path` lines), the file's `path<TAB>size` line and that many
# bytes, while their total stays within LIMIT. The size is stat's (the field before
# `<TAB>path<TAB>` in $S), checked to be a number; exactly that many bytes are sent, so a
# file that grew since keeps the framing (its body then fails the digest check and is fetched
# again). A body of up to SMALL bytes is sent by read and printf, builtins (dash reads a byte
# per call, so past that size head is cheaper). A NUL or a file changed since makes a body
# that fails its digest, or a frame that does not parse: either way it is fetched again.
# A here-document, not a pipe: the loop runs in this shell, no fork.
send_bodies() {
  limit=$1; small=$2; shift 2
  t=0
  while IFS= read -r l; do
    case $l in ''|\\*) continue;; esac
    same=; for e do if [ "$l" = "$e" ]; then same=1; break; fi; done
    [ -n "$same" ] && continue
    f=${l#*  }
    [ -f "$f" ] && [ ! -L "$f" ] && z=${S%%"	$f	"*} && z=${z##*	} && case $z in ''|*[!0-9]*) false;; esac && [ $((t+z)) -le "$limit" ] && t=$((t+z)) && printf '%s\t%s\n' "$f" "$z" && if [ "$z" -le "$small" ]; then n=0; { while [ "$n" -lt "$z" ] && IFS= read -r b; do printf '%s\n' "$b"; n=$((n+${#b}+1)); done; if [ "$n" -lt "$z" ]; then printf '%s' "$b"; fi; } < "$f"; else head -c "$z" -- "$f"; fi
  done <<__FOOBAR_SUMS__
${H-}
__FOOBAR_SUMS__
  # A body not sent (too large, or not a regular file) is no failure.
  :
}

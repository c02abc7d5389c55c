# Releasing the host lock (see remote::lock): only the run it names releases it.

# holds_lock HOLDER MARK: whether HOLDER names MARK (`run ID`). read and case are builtins:
# checking the holder costs no process.
holds_lock() {
  h=; { while IFS= read -r l || [ -n "$l" ]; do h="$h $l"; done < "$1"; } 2>/dev/null
  case $h in *"$2"*) return 0;; esac
  return 1
}

# Reading foobar's own small files on a host by shell builtins: every process started is a
# cost paid on every host of every run.

# print_lines FILE: FILE's lines, if it is a regular file.
print_lines() {
  [ -f "$1" ] && while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < "$1"
}

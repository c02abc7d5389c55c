# Reading the lock's holder (see remote::lock), for the gather.

# read_holder HOLDER: the lock holder's text (needs print_lines). A holder is created first
# and written right after: wait (up to 2 s) while it is still empty.
read_holder() {
  n=0; while [ -e "$1" ] && [ ! -s "$1" ] && [ "$n" -lt 20 ]; do sleep 0.1; n=$((n+1)); done
  print_lines "$1"
}

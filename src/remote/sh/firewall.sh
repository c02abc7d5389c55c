# The firewall's facts (gather): what is loaded against what was last confirmed. The same
# digest rule as foobar-firewall-load's: SHA-256 of `nft list table TABLE`'s output.

# table_digest FAMILY NAME: the digest of the live table, or `none` (not loaded, no nft).
table_digest() {
  if command -v nft >/dev/null 2>&1 && t=$(nft list table "$1" "$2" 2>/dev/null); then
    t=$(printf '%s\n' "$t" | sha256sum)
    echo "${t%% *}"
  else
    echo none
  fi
}

# firewall_facts STATE TIMER FAMILY NAME: one `key value` line each: live (table_digest
# now), confirmed (table_digest recorded when the ruleset was confirmed), ruleset (SHA-256
# of the confirmed ruleset file, what the host loads at boot), pending (yes while a loaded
# change waits for its confirmation). `none` where there is nothing.
firewall_facts() {
  l=$(table_digest "$3" "$4")
  c=none
  [ -s "$1/confirmed.table" ] && read -r c <"$1/confirmed.table"
  r=none
  if [ -f "$1/confirmed.nft" ]; then
    r=$(sha256sum <"$1/confirmed.nft")
    r=${r%% *}
  fi
  p=no
  [ -s "$2" ] && kill -0 "$(cat "$2")" 2>/dev/null && p=yes
  printf 'live %s\nconfirmed %s\nruleset %s\npending %s\n' "$l" "$c" "$r" "$p"
}

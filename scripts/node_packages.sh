# Sourced by scripts/setup.sh and bench/setup.sh: install_node_packages SOURCE TARGET LABEL
# installs the Node packages pinned by SOURCE/package.json and package-lock.json into
# TARGET/node_modules, again only when those files change (a stamp holds their digest).
install_node_packages() {
  local source=$1 target=$2 label=$3 stamp wanted
  stamp=$target/.installed
  wanted=$(cat "$source/package.json" "$source/package-lock.json" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] || [ ! -d "$target/node_modules" ]; then
    echo "setup: installing $label into $target"
    mkdir -p "$target"
    cp "$source/package.json" "$source/package-lock.json" "$target/"
    # npm ci refuses a lock file that omits other platforms' optional packages (npm 11 prunes
    # them); install honours the lock file's versions all the same.
    npm install --prefix "$target" --no-save --no-audit --no-fund --loglevel=error >/dev/null
    echo "$wanted" > "$stamp"
  fi
}

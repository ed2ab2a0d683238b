// Records which sources the built sidebar (../nbserve/labextension) was made from. The build is
// kept in git so that installs without Node (Binder) need no build; a unit test compares this
// stamp with the sources and says when the build is stale.
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const SOURCES = ['package.json', 'src', 'style', 'tsconfig.json', 'yarn.lock'];

function files(entry) {
  if (!fs.statSync(entry).isDirectory()) {
    return [entry];
  }
  return fs.readdirSync(entry).flatMap(name => files(path.posix.join(entry, name)));
}

const hash = crypto.createHash('sha256');
for (const file of SOURCES.flatMap(files).sort()) {
  hash.update(file + '\0');
  hash.update(fs.readFileSync(file));
  hash.update('\0');
}
fs.writeFileSync('../nbserve/labextension/sources.sha256', hash.digest('hex') + '\n');

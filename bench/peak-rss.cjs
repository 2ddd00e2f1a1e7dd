// Preloaded with `node -r ./bench/peak-rss.cjs …`: writes the process's peak RSS (KiB) to $PEAK_RSS_FILE at exit.
// VmHWM, not resourceUsage().maxRSS: Linux carries ru_maxrss across exec, so a
// child would report its parent's size at fork (here the bench holding PGlite).
const fs = require('node:fs');
process.on('exit', () => {
  if (!process.env.PEAK_RSS_FILE) return;
  const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  fs.writeFileSync(process.env.PEAK_RSS_FILE, hwm ? hwm[1] : String(process.resourceUsage().maxRSS));
});

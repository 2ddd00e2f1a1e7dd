// Preloaded with `node -r ./bench/peak-rss.cjs …`: writes the process's peak RSS (KiB) to $PEAK_RSS_FILE at exit.
const fs = require('node:fs');
process.on('exit', () => {
  if (process.env.PEAK_RSS_FILE) fs.writeFileSync(process.env.PEAK_RSS_FILE, String(process.resourceUsage().maxRSS));
});

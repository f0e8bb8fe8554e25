// Writes the licences of every npm package that went into the bundles (from esbuild's
// metafiles) to stdout: name@version, its licence identifier and its licence text.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";

const packages = new Map();
for (const metafile of process.argv.slice(2)) {
  for (const input of Object.keys(JSON.parse(readFileSync(metafile, "utf8")).inputs)) {
    const match = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
    if (match) packages.set(match[1], true);
  }
}
const sections = [];
for (const dir of [...packages.keys()].sort()) {
  const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = readdirSync(dir).find((name) => /^(licen[cs]e|copying)/i.test(name));
  if (!file) throw new Error(`${meta.name} has no licence file`);
  const text = readFileSync(join(dir, file), "utf8").trim();
  sections.push(`${meta.name}@${meta.version} (${meta.license})\n${"-".repeat(60)}\n${text}\n`);
}
process.stdout.write(
  "Third-party components bundled in netspec/web/vendor (built by tools/build_web_assets.sh)\n\n" +
    sections.join("\n"),
);

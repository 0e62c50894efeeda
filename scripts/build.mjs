// `npm run build`: compiles src/ to dist/ (tsconfig.build.json) and copies beside it the files the
// service reads at run time: the migrations, the SAML schemas and the console's browser modules.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';

const ASSETS = ['storage/migrations', 'saml/schemas', 'console/public'];

fs.rmSync('dist', { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
for (const dir of ASSETS) fs.cpSync(`src/${dir}`, `dist/${dir}`, { recursive: true });

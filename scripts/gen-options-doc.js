// Writes libs/nsq/OPTIONS.md from the option tables (run after `npm run build`).
import { writeFileSync } from 'node:fs';
import { optionsReference } from '../dist/libs/nsq/src/client/options.js';

writeFileSync(new URL('../libs/nsq/OPTIONS.md', import.meta.url), optionsReference());

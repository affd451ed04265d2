#!/usr/bin/env node
// The one exit path of the CLI: commands return an exit code, this sets it.
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));

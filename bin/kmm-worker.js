#!/usr/bin/env node
// Thin launcher so `npx kmm-worker` and the package `bin` run the compiled CLI.
import '../dist/cli.js';

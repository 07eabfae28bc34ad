#!/usr/bin/env node
// The CLI is TypeScript with no build step: tsx's loader is registered in this very process
// (rather than spawning a child), so Ctrl-C, exit codes and stdio belong to the CLI itself.
// Both imports resolve from this file, so the bin works from any directory and when linked.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/cli.ts', import.meta.url).href);

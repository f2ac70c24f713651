#!/usr/bin/env node
// The `vcstudio-multiuser-client` command: runs cli.ts through tsx (as `npm run client` does).
import { register } from 'tsx/esm/api'

register()
await import('./cli.ts')

// Runs the CLI from source in a child process (tests of long-lived commands and signals).
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv);

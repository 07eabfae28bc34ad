// The relay thread's entry point: plain JavaScript, so that it starts whoever runs the service
// (npm start, the tests' runner), then loads the TypeScript relay through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./event-relay-thread-entry.ts');

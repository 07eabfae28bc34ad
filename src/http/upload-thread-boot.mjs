// The worker thread's entry point: plain JavaScript, so that it starts whoever runs the service
// (npm start, the tests' runner), then loads the TypeScript parser through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./upload-thread-entry.ts');

export { filesRoutes, type FilesOptions } from './files.js';

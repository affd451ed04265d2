export { filesRoutes, type FilesOptions } from './files.js';
export { archiveRoutes, type ArchiveRoutesOptions, type ArchiveResult } from './archive/plugin.js';

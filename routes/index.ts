export { filesRoutes, type FilesOptions } from './files.js';
export { parseExport, type ExportSpec } from './exports.js';
export { archiveRoutes, type ArchiveRoutesOptions, type ArchiveResult } from './archive/plugin.js';

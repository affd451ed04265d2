export { filesRoutes, type FilesOptions } from './files.js';
export { parseExport, type ExportSpec } from './exports.js';
export { archiveRoutes, type ArchiveRoutesOptions, type ArchiveResult } from './archive/plugin.js';
export { uploadsRoutes, type UploadsOptions } from './uploads.js';
export type { ResumableOptions } from './resumable.js';
export { routableUrl } from './url-path.js';

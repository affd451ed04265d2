/** `nullgate/client`: the undici connector and the typed Client (CONTRACT.md "Library API"). */
export { connector, type Connector, type ConnectorOptions } from './connector.js';
export {
  Client,
  MAX_LISTING_ENTRIES,
  ORIGIN,
  filesPath,
  archivePath,
  encodeRemotePath,
  type ArchiveOptions,
  type ClientOptions,
  type DownloadOptions,
  type DownloadResult,
  type EntryType,
  type GetOptions,
  type GetResult,
  type ListEntry,
  type Listing,
  type ListingStream,
  type ListOptions,
  type ProgressCallback,
  type PullResult,
  type PushResult,
  type PutOptions,
  type PutResult,
  type RequestOptions,
  type StatResult,
} from './client.js';
export { ClientError, LocalFileError, PartialTransferError, UntrustedServerError } from './client-error.js';

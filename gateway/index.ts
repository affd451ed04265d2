export { createGateway, DEFAULT_GRACE_MS, type Gateway, type GatewayOptions } from './gateway.js';
export { buildApp, type AppOptions } from './app.js';
export { listenAbstract, installPeerGate, peerOf, type ListenOptions, type DeniedPeer } from './listen.js';
export {
  parseAddress,
  formatAddress,
  DEFAULT_ADDRESS,
  MAX_NAME_BYTES,
  type Address,
} from '../core/address.js';
export { createPeerPolicy, OVERFLOW_ID, type PeerPolicy, type PeerPolicyOptions } from './peer-policy.js';
export { errorCodes, NullgateError, type ErrorCode, type ErrorBody } from '../core/errors.js';
export { DEFAULT_LIMITS, UploadSlots, type Limits } from '../core/limits.js';
export type { PeerCredentials } from '../native/binding.js';
export { version } from '../core/version.js';

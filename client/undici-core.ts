/**
 * The part of undici the client uses, Agent and the request API, loaded without undici's index.
 * The index loads everything undici has (fetch, WebSocket, EventSource, the mock and cache
 * layers): tens of milliseconds of CLI start-up, and a bundle twice the size, for nothing a
 * client verb calls. These are the same files the index requires, so the Agent here is undici's
 * Agent (one module instance), usable with `request`, `stream` and `fetch` from 'undici'.
 */
import type { Agent as AgentClass } from 'undici';
import AgentImpl from 'undici/lib/dispatcher/agent.js';
import api from 'undici/lib/api/index.js';
import DispatcherImpl from 'undici/lib/dispatcher/dispatcher.js';

// What undici's index.js does: every dispatcher gets request/stream/pipeline/upgrade/connect.
// Idempotent, so loading the index as well changes nothing.
Object.assign(DispatcherImpl.prototype, api);

export const Agent: typeof AgentClass = AgentImpl;

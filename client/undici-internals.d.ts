// Types for the undici files undici-core.ts imports directly (undici types only its index):
// each is the CommonJS module.exports of that file, typed as what the index re-exports.
declare module 'undici/lib/dispatcher/agent.js' {
  import type { Agent } from 'undici';
  const AgentClass: typeof Agent;
  export = AgentClass;
}

declare module 'undici/lib/dispatcher/dispatcher.js' {
  import type { Dispatcher } from 'undici';
  const DispatcherClass: typeof Dispatcher;
  export = DispatcherClass;
}

declare module 'undici/lib/api/index.js' {
  import type { request, stream, pipeline, upgrade, connect } from 'undici';
  const api: {
    readonly request: typeof request;
    readonly stream: typeof stream;
    readonly pipeline: typeof pipeline;
    readonly upgrade: typeof upgrade;
    readonly connect: typeof connect;
  };
  export = api;
}

import { AsyncLocalStorage } from 'node:async_hooks';

/** Per-request values that logs carry without threading them through every call. */
export interface RequestScope {
  requestId: string;
}

export const requestScope = new AsyncLocalStorage<RequestScope>();

export function currentRequestId(): string | undefined {
  return requestScope.getStore()?.requestId;
}

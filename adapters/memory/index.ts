/** The in-memory adapters, exported as `synod/adapters/memory`: a faulty network and storage. */
export { MemoryNetwork, type MemoryNetworkOptions, type MemoryNetworkStats } from './network.js';
export { MemoryStorage, memoryNodeStorage } from './storage.js';

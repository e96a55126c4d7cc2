/**
 * `synod/testing`: test real nodes on a virtual clock and a faulty in-memory network, and the
 * seeded simulator of the pure core.
 */
export { VirtualClock, type VirtualTimerHandle } from './virtual-clock.js';
export {
  createTestCluster,
  TestCluster,
  type TestClusterOptions,
  type TestNodeOptions,
} from './cluster.js';
export * from './sim/index.js';

export {
  blocksNeeded,
  decide,
  endingSoon,
  idleSince,
  initialBlocks,
  STRATEGIES,
  type BlockSnapshot,
  type ScalingDecision,
  type ScalingLimits,
  type ScalingSnapshot,
  type StrategyName,
} from './decide.js'
export { BlockManager, type BlockActivity, type BlockInfo, type BlockManagerOptions } from './block-manager.js'
export {
  DEFAULT_DRAIN_LEAD_MS,
  DEFAULT_MAX_IDLE_TIME_MS,
  DEFAULT_STRATEGY,
  DEFAULT_STRATEGY_PERIOD_MS,
  Strategy,
  strategyOptionShape,
  type StrategyOptions,
  type Workload,
} from './strategy.js'

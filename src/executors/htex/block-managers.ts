import type { ManagerInfo } from '../../protocol/messages.js'
import type { BlockActivity } from '../../scaling/index.js'

interface BlockManagers {
  managers: Map<string, ManagerInfo>
  idleSinceMs: number | undefined
}

/**
 * The HTEX client's view of the managers connected now, by block, built from the interchange's
 * manager events and status replies: what the scaling strategy asks about each block (managers
 * connected, idle since when, when its time is up).
 */
export class ManagersByBlock {
  private readonly blocks = new Map<string, BlockManagers>()

  /** Managers connected now, with their last reported state. */
  all(): ManagerInfo[] {
    return [...this.blocks.values()].flatMap((block) => [...block.managers.values()])
  }

  registered(info: ManagerInfo): void {
    this.block(info.blockId, Date.now()).managers.set(info.managerId, info)
  }

  /** A manager lost, drained or refused. */
  removed(info: ManagerInfo): void {
    this.block(info.blockId, Date.now()).managers.delete(info.managerId)
  }

  /** The interchange's status reply: every manager's state, and which blocks are busy now. */
  statusReply(managers: readonly ManagerInfo[]): void {
    const now = Date.now()
    const busy = new Map<string, boolean>()
    for (const info of managers) {
      this.block(info.blockId, now).managers.set(info.managerId, info)
      busy.set(info.blockId, (busy.get(info.blockId) ?? false) || info.outstanding > 0)
    }
    for (const [blockId, block] of this.blocks) {
      if (busy.get(blockId)) block.idleSinceMs = undefined
      else block.idleSinceMs ??= now
    }
  }

  /**
   * What the strategy knows of a block. `idleCounts`: whether an idle block may be released now
   * (the executor decides: spread dispatch keeps every block busy while work is outstanding, so a
   * block is idle only when nothing is; packed dispatch leaves blocks idle under a small load).
   */
  activity(blockId: string, idleCounts: boolean): BlockActivity {
    const block = this.blocks.get(blockId)
    if (!block) return { connectedManagers: 0 }
    const activity: BlockActivity = { connectedManagers: block.managers.size, everConnected: true }
    if (block.idleSinceMs !== undefined && idleCounts) activity.idleSinceMs = block.idleSinceMs
    // The block ends when its first manager's time is up (they share the job; estimates may differ).
    for (const info of block.managers.values()) {
      if (info.endMs !== undefined && (activity.endMs === undefined || info.endMs < activity.endMs)) activity.endMs = info.endMs
    }
    return activity
  }

  /** Forgets an ended block; whether some manager of it had registered (it got off the ground). */
  forget(blockId: string): boolean {
    return this.blocks.delete(blockId)
  }

  private block(blockId: string, now: number): BlockManagers {
    let block = this.blocks.get(blockId)
    if (!block) this.blocks.set(blockId, (block = { managers: new Map(), idleSinceMs: now }))
    return block
  }
}

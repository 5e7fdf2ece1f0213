import { isEmptyPlan, type Impairment, type NetemPlan } from '../../spec/network-plan.ts';
import { applyByRelay, applyNetem, primaryInterface, type InterfaceChoice, type NetemSession } from '../netem.ts';
import type { PrivilegedRunner } from '../privileged.ts';

/**
 * A `network` fault: for its window the node's egress gets the fault's delay, jitter, loss or rate
 * (on top of the run's own `network`, field by field), then the run's own emulation again. By the
 * same mechanism as the run's emulation (docs/network.md): the WAN relay in netns mode, `tc`
 * elsewhere.
 */

/** `plan` with the fault's fields replacing the plan's own, toward every destination. */
export function impairedPlan(plan: NetemPlan | undefined, impairment: Impairment): NetemPlan {
  const base = plan ?? { default: {}, rules: [] };
  return { default: { ...base.default, ...impairment }, rules: base.rules.map((rule) => ({ ...rule, impairment: { ...rule.impairment, ...impairment } })) };
}

export interface NetworkFaultOptions {
  /** The node's own emulation for the repeat (from the spec's `network`), if any. */
  readonly base?: NetemPlan;
  readonly impairment: Impairment;
  readonly choice: InterfaceChoice;
  /** The WAN relay's control URL (netns mode); absent: `tc`. */
  readonly relay?: string;
  readonly privileged: PrivilegedRunner;
  /** The instance's working folder, for the undo journal of `tc` (see `applyNetem`). */
  readonly journal?: string;
}

export interface AppliedFault {
  /** What was done, in words. */
  readonly detail: string;
  /** Undoes it; throws when that fails. */
  heal(): Promise<void>;
}

/** Applies the fault's emulation; throws with the reason when it could not. */
export async function impairNetwork(options: NetworkFaultOptions): Promise<AppliedFault> {
  const plan = impairedPlan(options.base, options.impairment);
  const hasBase = options.base !== undefined && !isEmptyPlan(options.base);
  const settle = (session: NetemSession) => {
    if (!session.record.applied) throw new Error(session.record.error ?? 'the emulation was not applied');
    return session;
  };
  if (options.relay) {
    const relay = options.relay;
    const address = options.choice.address;
    const session = settle(await applyByRelay({ plan, address, relay }));
    return {
      detail: session.record.commands.join('; '),
      heal: async () => {
        if (hasBase) settle(await applyByRelay({ plan: options.base!, address, relay }));
        else {
          const removed = await session.remove();
          if (!removed.removed) throw new Error(removed.removeError ?? 'the relay did not reset the node');
        }
      },
    };
  }
  // tc: the run's own emulation comes off first (its qdiscs would be in the way), and back after.
  const device = await primaryInterface(options.choice);
  if (hasBase) await options.privileged('tc', ['qdisc', 'del', 'dev', device, 'root']);
  const session = settle(await applyNetem({ plan, choice: options.choice, privileged: options.privileged, journal: options.journal }));
  return {
    detail: session.record.commands.join('; '),
    heal: async () => {
      const removed = await session.remove();
      if (!removed.removed) throw new Error(removed.removeError ?? 'tc did not remove the emulation');
      if (hasBase) settle(await applyNetem({ plan: options.base!, choice: options.choice, privileged: options.privileged, journal: options.journal }));
    },
  };
}

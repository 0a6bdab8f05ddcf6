// The confirmation of an operator's action: a modal dialog with what it does and the API's pretend plan of it.
import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { RpcError } from './api.js';
import { planWords, type Plan } from './format.js';
import type { Decision, El } from './types.js';

export interface Pending {
  /** One confirmation: a pretend plan that arrives after it was closed does not open it again. */
  readonly seq: symbol;
  readonly title: string;
  /** What the action does, in words. */
  readonly what: string;
  readonly confirm: string;
  /** The pretend plan, or why the API refuses the change. */
  readonly plan?: Plan;
  readonly autoscale?: readonly Decision[];
  readonly refused?: string;
  readonly loading?: boolean;
  readonly run: () => Promise<string>;
}

export function Confirm({ pending, onClose }: { pending: Pending; onClose: (done?: string) => void }): El {
  const ref = useRef<HTMLDialogElement>(null);
  // The control that opened it, focused again when it goes.
  const opener = useRef(document.activeElement instanceof HTMLElement ? document.activeElement : null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => {
      if (dialog?.open) dialog.close();
      const back = opener.current;
      setTimeout(() => back?.isConnected && back.focus(), 0);
    };
  }, []);
  const go = async () => {
    setBusy(true);
    setError('');
    try {
      onClose(await pending.run());
    } catch (err) {
      setError(err instanceof RpcError ? err.details : String(err));
      setBusy(false);
    }
  };
  return h(
    'dialog',
    { ref, class: 'confirm', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-what', onCancel: (e: Event) => (e.preventDefault(), onClose()) },
    h('h2', { id: 'confirm-title' }, pending.title),
    h('p', { id: 'confirm-what' }, pending.what),
    h('h3', null, 'What will happen (the API’s pretend plan)'),
    pending.loading
      ? h('p', { role: 'status' }, 'Asking the API…')
      : pending.refused
        ? h('p', { class: 'bad', role: 'alert' }, `The API refuses this: ${pending.refused}`)
        : pending.plan
          ? h('ul', { class: 'plan', 'aria-label': 'Pretend plan' }, planWords(pending.plan).map((w) => h('li', null, w)))
          : null,
    pending.autoscale?.length ? h('p', null, 'Autoscaling would then: ', pending.autoscale.map((d) => `${d.action} (${d.reason}: ${d.message})`).join('; ')) : null,
    error ? h('p', { class: 'bad', role: 'alert' }, error) : null,
    h(
      'div',
      { class: 'buttons' },
      h('button', { type: 'button', class: 'primary', disabled: busy || pending.loading || !!pending.refused, onClick: go }, busy ? 'Working…' : pending.confirm),
      h('button', { type: 'button', onClick: () => onClose() }, 'Cancel'),
    ),
  );
}

// Sign-in: asks for the API token and checks it against the API.
import { h } from 'preact';
import { useState } from 'preact/hooks';
import { call, RpcError, unauthorizedCode } from './api.js';
import type { El } from './types.js';

export function SignIn({ onSignedIn, message }: { onSignedIn: (token: string) => void; message?: string }): El {
  const [token, setToken] = useState('');
  const [error, setError] = useState(message ?? '');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!token.trim()) return setError('Enter the API token.');
    setBusy(true);
    try {
      // Any group call says whether the token is right; manager.status would answer without one.
      await call(token.trim(), 'group.list');
      onSignedIn(token.trim());
    } catch (err) {
      setError(err instanceof RpcError && err.code === unauthorizedCode ? 'That token was refused.' : `Cannot sign in: ${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  return h(
    'main',
    { id: 'main', class: 'signin' },
    h('h1', null, 'Capstan'),
    h(
      'form',
      { onSubmit: submit, method: 'post', 'aria-describedby': 'signin-help' },
      h('label', { for: 'token' }, 'API token'),
      h('input', {
        id: 'token',
        type: 'password',
        autoComplete: 'off',
        spellcheck: false,
        required: true,
        value: token,
        onInput: (e: Event) => setToken((e.currentTarget as HTMLInputElement).value),
        'aria-invalid': error ? 'true' : undefined,
        'aria-describedby': error ? 'signin-error' : undefined,
      }),
      h('button', { type: 'submit', disabled: busy }, busy ? 'Signing in…' : 'Sign in'),
      error ? h('p', { id: 'signin-error', class: 'bad', role: 'alert' }, error) : null,
      h('p', { id: 'signin-help', class: 'help' }, 'The token of CAPSTAN_TOKEN_FILE. It is kept in this tab only, until you sign out or close it.'),
    ),
  );
}

// The web console's entry point, bundled by src/console/build.ts into /console/app.js.
import { h, render } from 'preact';
import { App } from './app.js';

render(h(App, null), document.getElementById('app')!);

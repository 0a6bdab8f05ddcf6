// tap runs this once before any test file: the Docker-backed tests share one real engine.
import { engineHost } from './engine.js';
engineHost();

// Entry point: mounts the root component into index.html's #app.
import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';

const target = document.getElementById('app');
if (!target) {
  throw new Error('index.html has no #app element to mount into');
}

export default mount(App, { target });

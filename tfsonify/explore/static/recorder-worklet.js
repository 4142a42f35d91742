/* Copies the microphone's first channel to the page, block by block (the page encodes WAV). */
class Recorder extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel && channel.length) this.port.postMessage(channel.slice(0));
    return true;
  }
}
registerProcessor("tfsonify-recorder", Recorder);

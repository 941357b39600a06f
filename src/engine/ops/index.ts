// Every op family attaches its methods to Tensor.prototype on import; torch.* functions are re-exported.
import './math.js';

// nn: Module, Parameter, layers, init; F: the functional forms.
export {};

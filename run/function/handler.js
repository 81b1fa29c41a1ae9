// The Function of the Kyma tutorials ("Create a workload", docs/03-tutorials/assets/function.yaml),
// unchanged: a Node.js Function whose `main` answers every request.
module.exports = {
  main: function (event, context) {
    return 'Hello World';
  },
};

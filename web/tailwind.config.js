/** Tailwind scans the page and its script for the classes they use. */
module.exports = {
  content: ['./index.html', './app.js'],
  theme: {
    extend: {
      colors: {
        dark: '#9575CD',
        lit: '#FFA726',
        otc: '#26A69A',
        gray: { 950: '#0b0f17' },
      },
    },
  },
  plugins: [],
};

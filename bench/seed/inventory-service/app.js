const express = require('express');
const axios = require('axios');
const app = express();
app.use(express.json());
const DAPR_HTTP_PORT = process.env.DAPR_HTTP_PORT || 3501;
const APP_PORT = process.env.APP_PORT || 3001;
// Mock inventory data
const inventory = {
'product-1': { name: 'Laptop', stock: 10 },
'product-2': { name: 'Mouse', stock: 50 },
'product-3': { name: 'Keyboard', stock: 25 }
};
// Check inventory availability
app.post('/check', (req, res) => {
const { productId, quantity } = req.body;
const product = inventory[productId];
if (!product) {
return res.status(404).json({ error: 'Product not found' });
}
const available = product.stock >= quantity;
if (available) {
// Reduce stock (in real app, this would be atomic)
product.stock -= quantity;
console.log(`Updated inventory for ${productId}: ${product.stock} remaining`);
}
res.json({
available,
productName: product.name,
remainingStock: product.stock
});
});
// Get current inventory
app.get('/inventory', (req, res) => {
res.json(inventory);
});
app.listen(APP_PORT, () => {
console.log(`Inventory service running on port ${APP_PORT}`);
});
